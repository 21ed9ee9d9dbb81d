// The acctsync console's only script: the Sync Status page refreshes itself while it is
// visible, and the page after an Entra sign-in moves on. Nothing here is needed to use a page.
"use strict";
(function () {
  const summary = document.querySelector("[data-refresh]");
  if (summary) {
    const seconds = Number(summary.getAttribute("data-refresh")) || 30;
    setInterval(function () {
      if (document.visibilityState === "visible") {
        window.location.reload();
      }
    }, seconds * 1000);
  }
  const onward = document.querySelector("a[data-go]");
  if (onward) {
    window.location.replace(onward.getAttribute("href"));
  }
})();

"""The Azure Functions entry point (v2 model): registers the blueprints, nothing else."""

import azure.functions as func

from functions.api import bp as api_bp
from functions.apply_batch import bp as apply_batch_bp
from functions.heartbeat import bp as heartbeat_bp

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)
app.register_functions(heartbeat_bp)
app.register_functions(apply_batch_bp)
app.register_functions(api_bp)

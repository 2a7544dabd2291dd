import sys

from services.routing.app import create_app
from services.routing.config import ConfigError
from shared.serve import serve

try:
    serve("routing", create_app)
except ConfigError as exc:
    print(f"routing: refusing to start, bad configuration:\n{exc}", file=sys.stderr)
    sys.exit(2)

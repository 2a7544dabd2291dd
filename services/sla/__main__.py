from services.sla.app import create_app
from shared.serve import serve

serve("sla", create_app)

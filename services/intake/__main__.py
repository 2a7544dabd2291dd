from services.intake.app import create_app
from shared.serve import serve

serve("intake", create_app)

from services.survey.app import create_app
from shared.serve import serve

serve("survey", create_app)

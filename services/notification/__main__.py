from services.notification.app import create_app
from shared.serve import serve

serve("notification", create_app)

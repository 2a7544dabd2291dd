"""``python -m services.review`` serves the review service on port 8006;
``python -m services.review rebuild`` empties the facts and replays the event log from its first offset;
``python -m services.review report 2026-11 [--format json|csv|xlsx] [--out FILE]`` prints a review;
``python -m services.review definitions [--markdown]`` lists every figure's definition."""

import sys

if len(sys.argv) > 1:
    from services.review.cli import main

    sys.exit(main(sys.argv[1:]))

from services.review.app import create_app
from shared.serve import serve

serve("review", create_app)

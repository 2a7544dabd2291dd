# One image for the five services; the container's command picks one:
#   docker run -e HELPDESK_SERVICE=routing ...   (or: command: ["python", "-m", "services.routing"])
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HELPDESK_HOST=0.0.0.0 \
    HELPDESK_SERVICE=intake

WORKDIR /app

# The pinned runtime dependencies first, so a code change does not reinstall them.
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

COPY shared ./shared
COPY services ./services

RUN useradd --system --uid 10001 --no-create-home helpdesk
USER 10001

EXPOSE 8001 8002 8003 8004 8005
# Health: GET /healthz on the service's port (compose and k8s define the checks).
CMD ["sh", "-c", "exec python -m \"services.${HELPDESK_SERVICE}\""]

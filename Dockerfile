# Fluxcord: docker build -t fluxcord . && docker run --env-file .env -v fluxcord-data:/data fluxcord
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    FLUXCORD_DATABASE=/data/fluxcord.db

WORKDIR /app
COPY pyproject.toml README.md ./
COPY bot ./bot
COPY cogs ./cogs
COPY storage ./storage
RUN pip install . \
 && useradd --system --uid 10001 --home-dir /app fluxcord \
 && mkdir -p /data && chown fluxcord /data

USER fluxcord
# The database and its -wal/-shm files live together on this volume.
VOLUME ["/data"]
CMD ["python", "-m", "bot"]

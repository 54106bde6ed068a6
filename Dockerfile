# Fluxcord: `docker compose up -d` (compose.yaml), or
#   docker build -t fluxcord . && docker run -d --env-file .env -v fluxcord-data:/data fluxcord
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
# The process runs as an unprivileged user (uid 10001) that owns only the data volume.
RUN pip install . \
 && useradd --system --uid 10001 --home-dir /app fluxcord \
 && mkdir -p /data && chown fluxcord /data

USER fluxcord
# The database and its -wal/-shm files live together on this volume; back it up with
#   docker compose exec fluxcord python -m bot backup /data/backup.db
VOLUME ["/data"]
# `docker stop` sends SIGTERM: the bot finishes its bookkeeping and closes; unfinished jobs resume on the next start.
STOPSIGNAL SIGTERM
CMD ["python", "-m", "bot"]

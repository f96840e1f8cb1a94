# syntax=docker/dockerfile:1
#
# The Django example (deploy/examples/django) as an image for compose.yaml here. The build
# context is deploy/examples/django (compose.yaml sets it); BuildKit reads
# shop.Dockerfile.dockerignore beside this file, which keeps the example's .venv and
# database out of the context.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    DJANGO_DB=/data/shop.sqlite3

WORKDIR /app
# The example's exact pins.
COPY requirements.txt ./
RUN pip install --no-cache-dir --disable-pip-version-check -r requirements.txt

COPY manage.py serve.py ./
COPY gateway_auth ./gateway_auth
COPY orders ./orders
COPY shop ./shop

# SQLite lives in /data (a named volume, which takes this folder's owner at first use).
RUN groupadd --system --gid 10002 shop \
 && useradd --system --uid 10002 --gid 10002 --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin shop \
 && install -d -o 10002 -g 10002 /data
USER 10002:10002

# serve.py listens only on loopback or a private address (compose.yaml gives the container
# a fixed one): the app trusts the gateway's identity headers, so nothing else may reach it.
EXPOSE 8000
ENTRYPOINT ["python", "serve.py"]
CMD ["--listen", "127.0.0.1:8000", "--migrate", "--access-log"]

# earmark: the web app and the one-shot migrate step (see docker-compose.yml).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# torch first, from the CPU index: the default index would pull gigabytes of CUDA wheels.
# The version is the one pyproject.toml pins.
RUN pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu

COPY pyproject.toml README.md alembic.ini ./
COPY app ./app
COPY ml ./ml
COPY migrations ./migrations
COPY templates ./templates
COPY static ./static

# Editable: earmark finds templates/, static/ and migrations/ next to its source (parents of app/),
# so the package must run from /app rather than from a copy in site-packages.
RUN pip install -e .

ENV EARMARK_DATA_DIR=/data
VOLUME ["/data"]
EXPOSE 8000
CMD ["earmark", "serve", "--host", "0.0.0.0", "--port", "8000"]

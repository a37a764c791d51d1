# The base image is pinned by digest, so a rebuild gets the same image: python:3.11.16-slim-bookworm,
# the official image's multi-platform index as recorded in docker-library/repo-info
# (repos/python/remote/3.11.16-slim-bookworm.md). Change the tag and the digest together.
FROM python:3.11.16-slim-bookworm@sha256:c425d915a89a6dcd3183b1797ad9bd8878caff5a417f6371c8df93c8ea8b727f
WORKDIR /app
# Dependencies (runtime and the [monitor] extra, i.e. Flower) from the lock only: one version each,
# and pip refuses any file whose hash is not in requirements.lock (regenerate with scripts/lock.sh).
COPY requirements.lock ./
RUN pip install --no-cache-dir --require-hashes -r requirements.lock
# autosync itself: nothing left to resolve, built with the base image's own (pinned) setuptools.
COPY pyproject.toml README.md celeryconfig.py ./
COPY autosync ./autosync
RUN pip install --no-cache-dir --no-deps --no-build-isolation .
ENV PYTHONPATH=/app
USER nobody
CMD ["autosync", "worker", "--loglevel", "INFO"]

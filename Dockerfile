FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md celeryconfig.py ./
COPY autosync ./autosync
RUN pip install --no-cache-dir ".[monitor]"
ENV PYTHONPATH=/app
USER nobody
CMD ["autosync", "worker", "--loglevel", "INFO"]

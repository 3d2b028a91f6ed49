# The streamrec image: the worker and the CLIs (simulator, readers). Used by docker-compose.yml.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY stream ./stream
COPY producers ./producers
COPY consumers ./consumers
COPY dashboards ./dashboards
RUN pip install --no-cache-dir -e .
ENV STREAMREC_WEB_HOST=0.0.0.0 STREAMREC_CACHE_DIR=/data
EXPOSE 6066
CMD ["streamrec", "worker"]

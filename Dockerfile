# One image for every part: the command picks the part (api, worker, projector, ...).
FROM python:3.11-slim
WORKDIR /app
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
COPY pyproject.toml README.md ./
COPY events ./events
COPY jobtypes ./jobtypes
COPY archive_jobs ./archive_jobs
COPY storage ./storage
COPY streaming ./streaming
COPY runtime ./runtime
COPY migrations ./migrations
COPY ingest_api ./ingest_api
COPY consumers ./consumers
COPY projections ./projections
COPY batchctl ./batchctl
RUN pip install --no-cache-dir . && useradd --system --uid 10001 batch
USER batch
ENTRYPOINT ["batchctl"]
CMD ["run"]

# One image for the API and the worker; docker-compose.yml picks the command.
FROM python:3.12-slim

WORKDIR /app
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install --no-cache-dir . && useradd --create-home jobcast
USER jobcast

ENV JOBCAST_HOST=0.0.0.0 \
    JOBCAST_PORT=8000 \
    JOBCAST_REDIS_URL=redis://redis:6379/0
EXPOSE 8000
CMD ["jobcast", "api"]

# trainboard: the web app, REST API and one embedded worker.
#   docker build -t trainboard .
#   docker run -p 8000:8000 -e TRAINBOARD_TOKEN=change-me -v trainboard-data:/data trainboard
# Another torch build (for example CUDA 12.8):
#   docker build --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cu128 -t trainboard:cuda .
FROM python:3.11-slim

ARG TORCH_REQUIREMENT="torch==2.13.0"
ARG TORCH_INDEX_URL="https://download.pytorch.org/whl/cpu"

RUN apt-get update \
    && apt-get install -y --no-install-recommends nodejs npm \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app
# torch first, from the chosen index, so the project's own install finds it already satisfied.
RUN pip install --no-cache-dir --index-url "${TORCH_INDEX_URL}" "${TORCH_REQUIREMENT}"

COPY pyproject.toml README.md ./
COPY backend ./backend
RUN pip install --no-cache-dir .

COPY frontend/package.json frontend/package-lock.json ./frontend/
RUN cd frontend && npm ci --omit=dev --no-audit --no-fund
COPY frontend ./frontend

ENV TRAINBOARD_HOME=/data \
    TRAINBOARD_FRONTEND_DIR=/app/frontend \
    PYTHONUNBUFFERED=1
VOLUME /data
EXPOSE 8000
# Listening beyond loopback needs TRAINBOARD_TOKEN (or --insecure on a trusted network).
CMD ["trainboard", "serve", "--host", "0.0.0.0", "--port", "8000"]

# artwatch on the CPU: beat, the crawl/alert worker (Scrapy + Debian's Chromium for the
# JavaScript spider), the review web app, and CPU matcher workers. GPU matchers use
# Dockerfile.cuda. Settings come from ARTWATCH_* variables and /run/secrets (see
# docker-compose.yml); the image holds no secret and no data.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    ARTWATCH_CHROMIUM_PATH=/usr/bin/chromium \
    ARTWATCH_DATA_DIR=/var/lib/artwatch

# g++: torch.compile's generated kernels for `artwatch train`'s backbone passes
# (matcher/compiled.py); without it they run eager, about half as fast.
RUN apt-get update \
 && apt-get install -y --no-install-recommends chromium fonts-dejavu-core ca-certificates g++ \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/artwatch
# The CPU build of torch first (PyPI's default Linux wheel carries CUDA libraries).
RUN pip install --index-url https://download.pytorch.org/whl/cpu \
        torch==2.14.1 torchvision==0.29.1
COPY pyproject.toml README.md scrapy.cfg ./
COPY artwatch ./artwatch
COPY crawler ./crawler
COPY matcher ./matcher
COPY training ./training
COPY alerts ./alerts
RUN pip install .

RUN useradd --system --create-home --home-dir /home/artwatch artwatch \
 && mkdir -p /var/lib/artwatch && chown artwatch /var/lib/artwatch
USER artwatch
VOLUME ["/var/lib/artwatch"]
EXPOSE 8000
# Each service names its command (docker-compose.yml): `celery -A artwatch.queue ...` or
# `artwatch ...`.
CMD ["artwatch", "--help"]

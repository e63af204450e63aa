# trunkline: build a wheel in one stage, run it as a non-root user in the next.
FROM python:3.12-slim AS build
# A compiler for the media path's C extension (the wheel carries it compiled; without one
# the build still succeeds and trunkline runs the pure-Python media path).
RUN apt-get update \
 && apt-get install -y --no-install-recommends gcc libc6-dev \
 && rm -rf /var/lib/apt/lists/*
# Optional extras, e.g. --build-arg EXTRAS=[s3] for recordings in S3 (docker-compose.cluster.yml).
ARG EXTRAS=""
WORKDIR /src
COPY pyproject.toml setup.py README.md ./
COPY trunkline ./trunkline
RUN pip wheel --no-cache-dir --wheel-dir /wheels ".${EXTRAS}"

FROM python:3.12-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends libsndfile1 \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /var/lib/trunkline --create-home trunkline \
 && install -d -m 0700 -o trunkline -g trunkline /var/lib/trunkline/data
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
USER trunkline
WORKDIR /var/lib/trunkline
ENV TRUNKLINE_DATA_DIR=/var/lib/trunkline/data
VOLUME ["/var/lib/trunkline/data"]
# HTTP API + media-stream WebSockets, SIP over UDP, RTP port range.
EXPOSE 8080/tcp 5060/udp 10000-20000/udp
HEALTHCHECK --interval=10s --timeout=2s --start-period=10s --retries=3 \
  CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2).status == 200 else 1)"
STOPSIGNAL SIGTERM
ENTRYPOINT ["trunkline"]
CMD ["serve"]

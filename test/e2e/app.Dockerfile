# The end-to-end test's app image: the sidecar image (node and the library) and one script.
ARG BASE
FROM ${BASE}
COPY test/e2e/app.mjs /app/e2e-app.mjs
ENTRYPOINT ["node", "/app/e2e-app.mjs"]

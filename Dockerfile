FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY provenance ./provenance
COPY hasher ./hasher
COPY workers ./workers
COPY contracts/build ./contracts/build
RUN pip install --no-cache-dir ".[hasher]"
ENV PROVENANCE_ANCHOR_ARTIFACT=/app/contracts/build/ProvenanceAnchor.json

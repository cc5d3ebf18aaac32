# deploy-action's image: the one binary on a distroless base. `action.yml` runs it as
# docker://ghcr.io/nova/deploy-action:v1, so no matrix job compiles Rust.
#
# Published path (.github/workflows/{ci,release}.yml, BuildKit): the default target, `runtime`.
#   chef (toolchain + cargo-chef) -> planner (recipe.json: the dependency graph only)
#   -> builder (cook the dependencies into their own cached layer, then build the crate) -> runtime.
#   Editing src/ re-runs only the last `cargo build`; the cooked dependency layer stays cached.
#
# Local path (no image can be pulled; scripts/image.sh): `--target runtime-local` with
#   --build-arg RUNTIME_BASE=<a Debian bookworm base imported with `docker import`>
#   and a build context holding only the host-built binary, `deploy-action`.
#   It is the first stage because the classic builder builds every stage up to its target;
#   BuildKit builds only the stages the target needs, so the published path never touches it.
#
# The ENTRYPOINT is the binary in exec form: a shell would drop the runner's hyphenated input
# variables (INPUT_AWS-REGION, INPUT_DRY-RUN, ...). No USER (the runner mounts its files for
# root) and no WORKDIR (the runner passes --workdir; act mounts the workspace elsewhere).

# Base images, pinned by digest. Refresh with `docker buildx imagetools inspect <image:tag>`.
#
# gcr.io/distroless/cc-debian12, the `latest` (root) variant: glibc, libgcc, libssl3 and CA
# certificates, no shell. Digest as pinned by public Dockerfiles that name it "the `latest`
# tag when pinned" (e.g. FROM gcr.io/distroless/cc-debian12:latest@sha256:e5d81dd...).
ARG RUNTIME_BASE=gcr.io/distroless/cc-debian12@sha256:e5d81ddde149641e2a9ba55be4545bc125c67de07508b03ba4c22e6eb0ded5aa
# rust:1.95.0-slim-bookworm (the multi-arch index; Cargo.toml's rust-version is 1.95). Bookworm
# like the runtime, so the binary needs no newer glibc than cc-debian12 has.
ARG RUST_IMAGE=rust:1.95.0-slim-bookworm@sha256:d7482085ff5b415f84dba5647ae71606650bdef00db7aeb69f4b3d170c3e4082
ARG CARGO_CHEF_VERSION=0.1.78

# ---- local: the runtime with a host-built binary (scripts/image.sh) --------------------------
FROM ${RUNTIME_BASE} AS runtime-local
LABEL org.opencontainers.image.source="https://github.com/nova/deploy-action"
COPY deploy-action /usr/local/bin/deploy-action
ENTRYPOINT ["/usr/local/bin/deploy-action"]

# ---- chef: the toolchain, cargo-chef, and the -dev packages the -sys crates link ------------
FROM ${RUST_IMAGE} AS chef
ARG CARGO_CHEF_VERSION
# git2's https transport links the system OpenSSL (libssl3 is in the runtime). zlib is built
# statically (LIBZ_SYS_STATIC): cc-debian12 has no zlib1g.
RUN apt-get update \
    && apt-get install -y --no-install-recommends pkg-config libssl-dev \
    && rm -rf /var/lib/apt/lists/*
RUN cargo install cargo-chef --locked --version "${CARGO_CHEF_VERSION}"
ENV LIBZ_SYS_STATIC=1 CARGO_TERM_COLOR=never
WORKDIR /src

# ---- planner: recipe.json changes only when the dependency graph does -----------------------
FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

# ---- builder: dependencies in one cached layer, then the crate ------------------------------
FROM chef AS builder
COPY --from=planner /src/recipe.json recipe.json
RUN cargo chef cook --release --locked --recipe-path recipe.json --bin deploy-action
COPY . .
RUN cargo build --release --locked --bin deploy-action \
    && cp target/release/deploy-action /deploy-action \
    && /deploy-action --version

# ---- runtime (published) --------------------------------------------------------------------
FROM ${RUNTIME_BASE} AS runtime
LABEL org.opencontainers.image.source="https://github.com/nova/deploy-action"
COPY --from=builder /deploy-action /usr/local/bin/deploy-action
ENTRYPOINT ["/usr/local/bin/deploy-action"]

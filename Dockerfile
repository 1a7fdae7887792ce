# Builds both binaries into small images. Not built on the development machines of this
# project (no container engine there); CI of a registry-connected environment builds it with
#   docker build --target webhook -t koperator-rs/koperator-webhook .
#   docker build --target operator -t koperator-rs/koperator .
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
# --locked: exactly the reviewed Cargo.lock (the one `make deny` checks), never a re-resolution.
RUN cargo build --release --locked -p koperator-webhook -p koperator-operator

FROM gcr.io/distroless/cc-debian12:nonroot AS webhook
COPY --from=build /src/target/release/koperator-webhook /koperator-webhook
USER 65532:65532
ENTRYPOINT ["/koperator-webhook"]

FROM gcr.io/distroless/cc-debian12:nonroot AS operator
COPY --from=build /src/target/release/koperator /koperator
USER 65532:65532
ENTRYPOINT ["/koperator"]

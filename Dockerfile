# One image with every Switchyard binary; each Deployment picks its command.
# Built from vendor/, static, on a distroless non-root base.
# No container engine runs on the CI machines, so CI does not build this.
FROM golang:1.26 AS build
WORKDIR /src
COPY . .
RUN CGO_ENABLED=0 go build -mod=vendor -trimpath -ldflags "-s -w" -o /out/ ./cmd/...

FROM gcr.io/distroless/static:nonroot
COPY --from=build /out/ /
USER 65532:65532

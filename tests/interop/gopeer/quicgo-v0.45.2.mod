// The same program, built with quic-go v0.45.2 in place of the reference's
// v0.37.4: the combination Dendrite v0.13.8 ships (same reference commit).
// Build with: go build -modfile=quicgo-v0.45.2.mod
module pinewood.test/interop/gopeer

go 1.22

require (
	github.com/matrix-org/pinecone v0.11.1-0.20230810010612-ea4c33717fd7
	nhooyr.io/websocket v1.8.7
)

require (
	github.com/Arceliar/phony v0.0.0-20210209235338-dde1a8dca979 // indirect
	github.com/go-task/slim-sprig v0.0.0-20230315185526-52ccab3ef572 // indirect
	github.com/google/pprof v0.0.0-20230808223545-4887780b67fb // indirect
	github.com/gorilla/websocket v1.5.0 // indirect
	github.com/klauspost/compress v1.15.9 // indirect
	github.com/onsi/ginkgo/v2 v2.11.0 // indirect
	github.com/quic-go/quic-go v0.45.2 // indirect
	go.uber.org/atomic v1.9.0 // indirect
	go.uber.org/mock v0.4.0 // indirect
	golang.org/x/crypto v0.23.0 // indirect
	golang.org/x/exp v0.0.0-20240506185415-9bf2ced13842 // indirect
	golang.org/x/mod v0.17.0 // indirect
	golang.org/x/net v0.25.0 // indirect
	golang.org/x/sys v0.20.0 // indirect
	golang.org/x/tools v0.21.0 // indirect
)

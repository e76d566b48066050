// gopeer: one Go reference router (matrix-org/pinecone) per process, for the
// interoperability tests. The reference is pinned at ea4c337 (2023-08-10): its
// router, sessions and types are those of b35aec6, the newest commit, whose
// later changes touch only the simulator's web page; the module proxy serves
// ea4c337 (the commit Dendrite v0.13.8 builds with) but not b35aec6.
// quic-go comes from the reference's own go.mod (v0.37.4).
module pinewood.test/interop/gopeer

go 1.22

require (
	github.com/matrix-org/pinecone v0.11.1-0.20230810010612-ea4c33717fd7
	nhooyr.io/websocket v1.8.7
)

require (
	github.com/Arceliar/phony v0.0.0-20210209235338-dde1a8dca979 // indirect
	github.com/go-task/slim-sprig v0.0.0-20230315185526-52ccab3ef572 // indirect
	github.com/golang/mock v1.6.0 // indirect
	github.com/google/pprof v0.0.0-20230808223545-4887780b67fb // indirect
	github.com/gorilla/websocket v1.5.0 // indirect
	github.com/klauspost/compress v1.15.9 // indirect
	github.com/onsi/ginkgo/v2 v2.11.0 // indirect
	github.com/quic-go/qtls-go1-20 v0.3.2 // indirect
	github.com/quic-go/quic-go v0.37.4 // indirect
	go.uber.org/atomic v1.9.0 // indirect
	golang.org/x/crypto v0.12.0 // indirect
	golang.org/x/exp v0.0.0-20230809150735-7b3493d9a819 // indirect
	golang.org/x/mod v0.12.0 // indirect
	golang.org/x/net v0.14.0 // indirect
	golang.org/x/sys v0.11.0 // indirect
	golang.org/x/tools v0.12.0 // indirect
)

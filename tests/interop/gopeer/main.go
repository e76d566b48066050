// gopeer runs one Go Pinecone router (the reference implementation, taken as
// an ordinary module dependency) for Pinewood's interoperability tests.
//
// It peers over TCP and WebSocket on loopback, runs one application above the
// router (raw packets, or Pinecone sessions serving and requesting HTTP) and
// answers a small JSON control API on loopback. It starts no multicast
// discovery: it only ever talks to the addresses it is given.
//
// On start it prints one JSON line to stdout with its key and the addresses it
// bound (every listener may be given port 0), then logs to stderr.
package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/matrix-org/pinecone/router"
	"github.com/matrix-org/pinecone/sessions"
	"github.com/matrix-org/pinecone/types"
	"nhooyr.io/websocket"
)

// The payload prefixes of Pinewood's overlay ping: a ping is the prefix and an
// 8-byte nonce, and the answer carries the same nonce behind the pong prefix.
var (
	pingPrefix = []byte("\x00pinewood-ping\x00")
	pongPrefix = []byte("\x00pinewood-pong\x00")
)

const (
	redialInterval = time.Second
	// wsReadLimit bounds one WebSocket message; a Pinecone frame is at most 64 KiB.
	wsReadLimit = 1 << 20
)

type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

func main() {
	seedHex := flag.String("seed", "", "hex ed25519 seed (32 bytes); a random key if empty")
	listenTCP := flag.String("listen", "", "TCP peering listen address (host:port)")
	listenWS := flag.String("listen-ws", "", "WebSocket peering listen address (host:port)")
	control := flag.String("control", "127.0.0.1:0", "control API listen address (loopback)")
	app := flag.String("app", "packets", "application above the router: packets or sessions")
	var peers stringList
	flag.Var(&peers, "peer", "peer to dial and keep dialling: tcp://host:port or ws://host:port/path (repeatable)")
	flag.Parse()

	logger := log.New(os.Stderr, "", log.Ltime|log.Lmicroseconds)
	sk, err := privateKey(*seedHex)
	if err != nil {
		logger.Fatalf("bad -seed: %v", err)
	}
	r := router.NewRouter(logger, sk)
	ready := map[string]string{"key": r.PublicKey().String(), "app": *app}

	if *listenTCP != "" {
		ln, err := net.Listen("tcp", *listenTCP)
		if err != nil {
			logger.Fatalf("listen tcp: %v", err)
		}
		ready["tcp"] = ln.Addr().String()
		go acceptTCP(logger, r, ln)
	}
	if *listenWS != "" {
		ln, err := net.Listen("tcp", *listenWS)
		if err != nil {
			logger.Fatalf("listen ws: %v", err)
		}
		ready["ws"] = ln.Addr().String()
		go serveWS(logger, r, ln)
	}

	api := &controlAPI{router: r, log: logger, waiters: map[string]pingWaiter{}, received: map[string]int{}, echoed: map[string]int{}}
	switch *app {
	case "packets":
		go api.readPackets()
	case "sessions":
		api.sessions = sessions.NewSessions(logger, r, []string{"matrix"})
		api.http = api.sessions.Protocol("matrix").HTTP()
		api.http.Mux().HandleFunc("/", api.serveHomeserver)
	default:
		logger.Fatalf("unknown -app %q", *app)
	}

	ctl, err := net.Listen("tcp", *control)
	if err != nil {
		logger.Fatalf("listen control: %v", err)
	}
	ready["control"] = ctl.Addr().String()
	go func() { _ = http.Serve(ctl, api.mux()) }()

	for _, uri := range peers {
		go keepDialling(logger, r, uri)
	}

	line, _ := json.Marshal(ready)
	fmt.Println(string(line))

	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGINT, syscall.SIGTERM)
	<-stop
	if api.sessions != nil {
		_ = api.sessions.Close()
	}
	_ = r.Close()
}

func privateKey(seedHex string) (ed25519.PrivateKey, error) {
	if seedHex == "" {
		_, sk, err := ed25519.GenerateKey(rand.Reader)
		return sk, err
	}
	seed, err := hex.DecodeString(seedHex)
	if err != nil {
		return nil, err
	}
	if len(seed) != ed25519.SeedSize {
		return nil, fmt.Errorf("want %d bytes, got %d", ed25519.SeedSize, len(seed))
	}
	return ed25519.NewKeyFromSeed(seed), nil
}

// ---------------------------------------------------------------- peerings

func acceptTCP(logger *log.Logger, r *router.Router, ln net.Listener) {
	for {
		conn, err := ln.Accept()
		if err != nil {
			logger.Printf("tcp accept: %v", err)
			return
		}
		if _, err := r.Connect(conn,
			router.ConnectionURI(conn.RemoteAddr().String()),
			router.ConnectionPeerType(router.PeerTypeRemote),
			router.ConnectionZone("tcp-in"),
		); err != nil {
			logger.Printf("inbound tcp %s: %v", conn.RemoteAddr(), err)
			_ = conn.Close()
		}
	}
}

// serveWS accepts WebSocket peerings on any path, as the reference's daemon does.
func serveWS(logger *log.Logger, r *router.Router, ln net.Listener) {
	handler := http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		c, err := websocket.Accept(w, req, &websocket.AcceptOptions{InsecureSkipVerify: true})
		if err != nil {
			logger.Printf("ws accept: %v", err)
			return
		}
		c.SetReadLimit(wsReadLimit)
		conn := websocket.NetConn(context.Background(), c, websocket.MessageBinary)
		if _, err := r.Connect(conn,
			router.ConnectionURI(req.RemoteAddr),
			router.ConnectionPeerType(router.PeerTypeRemote),
			router.ConnectionZone("ws-in"),
		); err != nil {
			logger.Printf("inbound ws %s: %v", req.RemoteAddr, err)
			_ = conn.Close()
		}
	})
	_ = http.Serve(ln, handler)
}

// keepDialling keeps one peering to uri up, redialling a second after it ends.
func keepDialling(logger *log.Logger, r *router.Router, uri string) {
	for {
		if !connectedTo(r, uri) {
			if err := dial(r, uri); err != nil {
				logger.Printf("dial %s: %v", uri, err)
			}
		}
		time.Sleep(redialInterval)
	}
}

func connectedTo(r *router.Router, uri string) bool {
	for _, p := range r.Peers() {
		if p.URI == uri {
			return true
		}
	}
	return false
}

func dial(r *router.Router, uri string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var conn net.Conn
	switch {
	case strings.HasPrefix(uri, "tcp://"):
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", strings.TrimPrefix(uri, "tcp://"))
		if err != nil {
			return err
		}
		conn = c
	case strings.HasPrefix(uri, "ws://"):
		c, _, err := websocket.Dial(ctx, uri, nil)
		if err != nil {
			return err
		}
		c.SetReadLimit(wsReadLimit)
		conn = websocket.NetConn(context.Background(), c, websocket.MessageBinary)
	default:
		return fmt.Errorf("unsupported peer URI %q", uri)
	}
	if _, err := r.Connect(conn,
		router.ConnectionURI(uri),
		router.ConnectionPeerType(router.PeerTypeRemote),
		router.ConnectionZone("static"),
	); err != nil {
		_ = conn.Close()
		return err
	}
	return nil
}

// ---------------------------------------------------------------- the control API

type pingWaiter struct {
	key    types.PublicKey
	answer chan time.Time
}

type controlAPI struct {
	router   *router.Router
	log      *log.Logger
	sessions *sessions.Sessions
	http     *sessions.HTTP

	mu       sync.Mutex
	waiters  map[string]pingWaiter // ping nonce (hex) -> who must answer, and where to
	received map[string]int        // packets (not pings or pongs) by source key
	echoed   map[string]int        // pings answered, by source key
	served   int                   // HTTP requests served over sessions
}

func (a *controlAPI) mux() *http.ServeMux {
	m := http.NewServeMux()
	m.HandleFunc("/status", a.getStatus)
	m.HandleFunc("/received", a.getReceived)
	m.HandleFunc("/send", a.postSend)
	m.HandleFunc("/ping", a.postPing)
	m.HandleFunc("/http", a.postHTTP)
	return m
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func fail(w http.ResponseWriter, status int, err error) {
	writeJSON(w, status, map[string]string{"error": err.Error()})
}

func decodeBody(w http.ResponseWriter, req *http.Request, v any) bool {
	if req.Method != http.MethodPost {
		fail(w, http.StatusMethodNotAllowed, errors.New("POST only"))
		return false
	}
	if err := json.NewDecoder(io.LimitReader(req.Body, 1<<20)).Decode(v); err != nil {
		fail(w, http.StatusBadRequest, err)
		return false
	}
	return true
}

func parseKey(text string) (types.PublicKey, error) {
	var key types.PublicKey
	raw, err := hex.DecodeString(text)
	if err != nil || len(raw) != len(key) {
		return key, fmt.Errorf("not a hex public key: %q", text)
	}
	copy(key[:], raw)
	return key, nil
}

// The manhole's view of the router state, the parts the tests read.
type manhole struct {
	Public string `json:"public_key"`
	Root   *struct {
		Key      string `json:"root_public_key"`
		Sequence uint64 `json:"root_sequence"`
	} `json:"root"`
	Parent *struct {
		Port int    `json:"port"`
		Key  string `json:"public_key"`
	} `json:"parent"`
	SNEK struct {
		Descending *struct {
			Key string `json:"public_key"`
		} `json:"descending"`
	} `json:"snek"`
}

type peerView struct {
	Key  string `json:"key"`
	Port int    `json:"port"`
	URI  string `json:"uri"`
	Zone string `json:"zone"`
}

type statusView struct {
	Key         string     `json:"key"`
	App         string     `json:"app"`
	Root        any        `json:"root"`
	Coordinates []uint64   `json:"coordinates"`
	Parent      *string    `json:"parent"`
	Descending  *string    `json:"descending"`
	Peers       []peerView `json:"peers"`
	Sessions    []string   `json:"sessions"`
	Served      int        `json:"served"`
}

func (a *controlAPI) getStatus(w http.ResponseWriter, req *http.Request) {
	// The reference's manhole handler reads the router's state inside its actor;
	// its JSON is the one view of root, parent and snake that the package offers.
	rec := httptest.NewRecorder()
	a.router.ManholeHandler(rec, req)
	var m manhole
	if err := json.Unmarshal(rec.Body.Bytes(), &m); err != nil {
		fail(w, http.StatusInternalServerError, err)
		return
	}
	view := statusView{Key: m.Public, Coordinates: []uint64{}, Peers: []peerView{}, Sessions: []string{}}
	if a.sessions != nil {
		view.App = "sessions"
		for _, key := range a.sessions.Protocol("matrix").Sessions() {
			view.Sessions = append(view.Sessions, hex.EncodeToString(key))
		}
	} else {
		view.App = "packets"
	}
	if m.Root != nil {
		view.Root = map[string]any{"key": m.Root.Key, "sequence": m.Root.Sequence}
	}
	for _, port := range a.router.Coords() {
		view.Coordinates = append(view.Coordinates, uint64(port))
	}
	if m.Parent != nil {
		view.Parent = &m.Parent.Key
	}
	if m.SNEK.Descending != nil {
		view.Descending = &m.SNEK.Descending.Key
	}
	for _, p := range a.router.Peers() {
		if p.Port == 0 || p.PublicKey == m.Public {
			continue // the router's own local port
		}
		view.Peers = append(view.Peers, peerView{Key: p.PublicKey, Port: p.Port, URI: p.URI, Zone: p.Zone})
	}
	a.mu.Lock()
	view.Served = a.served
	a.mu.Unlock()
	writeJSON(w, http.StatusOK, view)
}

// ---------------------------------------------------------------- packets

func (a *controlAPI) readPackets() {
	buf := make([]byte, 65535)
	for {
		n, addr, err := a.router.ReadFrom(buf)
		if err != nil {
			a.log.Printf("read: %v", err)
			return
		}
		source, ok := addr.(types.PublicKey)
		if !ok || n == 0 {
			continue
		}
		payload := buf[:n]
		switch {
		case len(payload) == len(pingPrefix)+8 && hasPrefix(payload, pingPrefix):
			answer := append(append([]byte{}, pongPrefix...), payload[len(pingPrefix):]...)
			_, _ = a.router.WriteTo(answer, source)
			a.mu.Lock()
			a.echoed[source.String()]++
			a.mu.Unlock()
		case hasPrefix(payload, pongPrefix):
			nonce := hex.EncodeToString(payload[len(pongPrefix):])
			a.mu.Lock()
			waiter, found := a.waiters[nonce]
			// Only the pinged node's answer counts: the reference hands a frame
			// that has no better next hop to the local application, so a node
			// nearest to an absent key answers pings meant for it.
			if found && waiter.key == source {
				delete(a.waiters, nonce)
			}
			a.mu.Unlock()
			if found && waiter.key == source {
				waiter.answer <- time.Now()
			}
		default:
			a.mu.Lock()
			a.received[source.String()]++
			a.mu.Unlock()
		}
	}
}

func hasPrefix(b, prefix []byte) bool {
	return len(b) >= len(prefix) && string(b[:len(prefix)]) == string(prefix)
}

func (a *controlAPI) getReceived(w http.ResponseWriter, _ *http.Request) {
	a.mu.Lock()
	defer a.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"received": a.received, "echoed": a.echoed})
}

type sendRequest struct {
	Key   string `json:"key"`
	Count int    `json:"count"`
	Size  int    `json:"size"`
}

// postSend sends count packets of size bytes (not pings) to a key.
func (a *controlAPI) postSend(w http.ResponseWriter, req *http.Request) {
	var body sendRequest
	if !decodeBody(w, req, &body) {
		return
	}
	key, err := parseKey(body.Key)
	if err != nil || body.Count < 0 || body.Size < 1 || body.Size > 60000 {
		fail(w, http.StatusBadRequest, fmt.Errorf("want a key, count >= 0 and 1 <= size <= 60000"))
		return
	}
	// A zero first byte: not a QUIC packet (its fixed bit is clear), so a
	// Pinewood node counts it as a payload for no application.
	payload := make([]byte, body.Size)
	copy(payload, "\x00gopeer packet")
	for i := 0; i < body.Count; i++ {
		if _, err := a.router.WriteTo(payload, key); err != nil {
			fail(w, http.StatusInternalServerError, err)
			return
		}
	}
	writeJSON(w, http.StatusOK, map[string]int{"sent": body.Count})
}

type pingRequest struct {
	Key       string `json:"key"`
	Count     int    `json:"count"`
	TimeoutMS int    `json:"timeout_ms"`
}

// postPing sends Pinewood-style pings, one at a time, and reports the answers.
func (a *controlAPI) postPing(w http.ResponseWriter, req *http.Request) {
	var body pingRequest
	if !decodeBody(w, req, &body) {
		return
	}
	if a.sessions != nil {
		fail(w, http.StatusConflict, errors.New("pings need -app packets"))
		return
	}
	key, err := parseKey(body.Key)
	if err != nil || body.Count < 1 || body.Count > 1000 || body.TimeoutMS < 1 {
		fail(w, http.StatusBadRequest, fmt.Errorf("want a key, 1 <= count <= 1000 and timeout_ms >= 1"))
		return
	}
	var rtts []float64
	for i := 0; i < body.Count; i++ {
		nonce := make([]byte, 8)
		_, _ = rand.Read(nonce)
		waiter := pingWaiter{key: key, answer: make(chan time.Time, 1)}
		a.mu.Lock()
		a.waiters[hex.EncodeToString(nonce)] = waiter
		a.mu.Unlock()
		started := time.Now()
		_, _ = a.router.WriteTo(append(append([]byte{}, pingPrefix...), nonce...), key)
		select {
		case answered := <-waiter.answer:
			rtts = append(rtts, float64(answered.Sub(started).Microseconds())/1000)
		case <-time.After(time.Duration(body.TimeoutMS) * time.Millisecond):
			a.mu.Lock()
			delete(a.waiters, hex.EncodeToString(nonce))
			a.mu.Unlock()
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"sent": body.Count, "answered": len(rtts), "rtt_ms": rtts})
}

// ---------------------------------------------------------------- sessions

// pattern is the same known body as the Python tests' pattern(): the SHA-256
// of "pattern", doubled 2048 times, repeated and cut to size.
func pattern(size int) []byte {
	digest := sha256.Sum256([]byte("pattern"))
	block := make([]byte, 0, len(digest)*2048)
	for i := 0; i < 2048; i++ {
		block = append(block, digest[:]...)
	}
	out := make([]byte, 0, size)
	for len(out) < size {
		out = append(out, block[:min(len(block), size-len(out))]...)
	}
	return out
}

// serveHomeserver answers over sessions like the tests' stand-in homeserver:
// POST echoes the body, GET /bytes/N answers N bytes of pattern().
func (a *controlAPI) serveHomeserver(w http.ResponseWriter, req *http.Request) {
	a.mu.Lock()
	a.served++
	a.mu.Unlock()
	w.Header().Set("X-Path", req.URL.Path)
	w.Header().Set("X-Host", req.Host)
	w.Header().Set("X-Served-By", a.router.PublicKey().String())
	switch {
	case req.Method == http.MethodPost || req.Method == http.MethodPut:
		body, err := io.ReadAll(req.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		_, _ = w.Write(body)
	case strings.HasPrefix(req.URL.Path, "/bytes/"):
		size, err := strconv.Atoi(strings.TrimPrefix(req.URL.Path, "/bytes/"))
		if err != nil || size < 0 || size > 64<<20 {
			http.Error(w, "bad size", http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Length", strconv.Itoa(size))
		_, _ = w.Write(pattern(size))
	default:
		_, _ = w.Write([]byte("hello from gopeer"))
	}
}

type httpRequest struct {
	Key       string            `json:"key"`
	Method    string            `json:"method"`
	Path      string            `json:"path"`
	BodySize  int               `json:"body_size"`
	TimeoutMS int               `json:"timeout_ms"`
	Headers   map[string]string `json:"headers"`
}

// postHTTP makes one HTTP request over a session to a key, with a body of
// pattern(body_size), and reports the answer's status, length and SHA-256.
func (a *controlAPI) postHTTP(w http.ResponseWriter, req *http.Request) {
	var body httpRequest
	if !decodeBody(w, req, &body) {
		return
	}
	if a.http == nil {
		fail(w, http.StatusConflict, errors.New("HTTP over sessions needs -app sessions"))
		return
	}
	if _, err := parseKey(body.Key); err != nil || body.BodySize < 0 || body.BodySize > 64<<20 {
		fail(w, http.StatusBadRequest, fmt.Errorf("want a key and 0 <= body_size <= 64 MiB"))
		return
	}
	if body.TimeoutMS <= 0 {
		body.TimeoutMS = 30000
	}
	client := *a.http.Client()
	client.Timeout = time.Duration(body.TimeoutMS) * time.Millisecond
	var reader io.Reader
	if body.BodySize > 0 {
		reader = strings.NewReader(string(pattern(body.BodySize)))
	}
	out, err := http.NewRequest(body.Method, "http://"+body.Key+body.Path, reader)
	if err != nil {
		fail(w, http.StatusBadRequest, err)
		return
	}
	for name, value := range body.Headers {
		out.Header.Set(name, value)
	}
	started := time.Now()
	resp, err := client.Do(out)
	if err != nil {
		writeJSON(w, http.StatusOK, map[string]any{"error": err.Error(), "seconds": time.Since(started).Seconds()})
		return
	}
	defer resp.Body.Close()
	hash := sha256.New()
	n, err := io.Copy(hash, resp.Body)
	result := map[string]any{
		"status":  resp.StatusCode,
		"length":  n,
		"sha256":  hex.EncodeToString(hash.Sum(nil)),
		"headers": resp.Header,
		"seconds": time.Since(started).Seconds(),
	}
	if err != nil {
		result["error"] = err.Error()
	}
	writeJSON(w, http.StatusOK, result)
}

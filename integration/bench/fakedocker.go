package main

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"
)

// fakeDocker serves the part of the Docker Engine API that dockerfence run
// uses (ping, version, networks, containers, events) on a unix socket, so
// that the reaction benchmark times dockerfence and not dockerd: a network
// "appears" when the benchmark creates its bridge and sends the event
// Docker would send.
type fakeDocker struct {
	mu       sync.Mutex
	networks map[string]string // name -> bridge/subnet JSON object
	subs     map[chan []byte]struct{}
	srv      *http.Server
}

const fakeAPI = "1.47"

func startFakeDocker(sock string) (*fakeDocker, error) {
	os.Remove(sock)
	l, err := net.Listen("unix", sock)
	if err != nil {
		return nil, fmt.Errorf("fake docker: %w", err)
	}
	f := &fakeDocker{networks: map[string]string{}, subs: map[chan []byte]struct{}{}}
	f.srv = &http.Server{Handler: f}
	go f.srv.Serve(l)
	return f, nil
}

func (f *fakeDocker) Close() { f.srv.Close() }

// add records a bridge network and sends its "network create" event.
func (f *fakeDocker) add(name, bridge, subnet string) {
	id := fmt.Sprintf("%064x", time.Now().UnixNano())
	obj := fmt.Sprintf(`{"Name":%q,"Id":%q,"Driver":"bridge","Scope":"local","EnableIPv4":true,`+
		`"IPAM":{"Driver":"default","Config":[{"Subnet":%q}]},"Options":{"com.docker.network.bridge.name":%q},"Labels":{}}`,
		name, id, subnet, bridge)
	f.mu.Lock()
	f.networks[name] = obj
	f.mu.Unlock()
	f.event("create", id, name)
}

// remove forgets a network and sends its "network destroy" event.
func (f *fakeDocker) remove(name string) {
	f.mu.Lock()
	delete(f.networks, name)
	f.mu.Unlock()
	f.event("destroy", "0", name)
}

func (f *fakeDocker) event(action, id, name string) {
	now := time.Now()
	msg, _ := json.Marshal(map[string]any{
		"Type": "network", "Action": action, "scope": "local",
		"Actor": map[string]any{"ID": id, "Attributes": map[string]string{"name": name, "type": "bridge"}},
		"time":  now.Unix(), "timeNano": now.UnixNano(),
	})
	f.mu.Lock()
	defer f.mu.Unlock()
	for ch := range f.subs {
		select {
		case ch <- msg:
		default: // a subscriber that does not read loses events, as with dockerd
		}
	}
}

func (f *fakeDocker) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Api-Version", fakeAPI)
	w.Header().Set("Ostype", "linux")
	path := strings.TrimPrefix(r.URL.Path, "/v"+fakeAPI)
	switch path {
	case "/_ping":
		w.Write([]byte("OK"))
	case "/version":
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"Version":"27.3.1","ApiVersion":%q,"MinAPIVersion":"1.24","Os":"linux","Arch":"amd64"}`, fakeAPI)
	case "/networks":
		f.mu.Lock()
		var objs []string
		for _, o := range f.networks {
			objs = append(objs, o)
		}
		f.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, "[%s]", strings.Join(objs, ","))
	case "/containers/json":
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte("[]"))
	case "/events":
		ch := make(chan []byte, 1024)
		f.mu.Lock()
		f.subs[ch] = struct{}{}
		f.mu.Unlock()
		defer func() {
			f.mu.Lock()
			delete(f.subs, ch)
			f.mu.Unlock()
		}()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		fl, _ := w.(http.Flusher)
		if fl != nil {
			fl.Flush()
		}
		for {
			select {
			case <-r.Context().Done():
				return
			case msg := <-ch:
				w.Write(append(msg, '\n'))
				if fl != nil {
					fl.Flush()
				}
			}
		}
	default:
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound)
		w.Write([]byte(`{"message":"page not found"}`))
	}
}

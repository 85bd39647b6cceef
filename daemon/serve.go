package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/dockerfence/dockerfence/denylog"
	"github.com/dockerfence/dockerfence/dnslearn"
	"github.com/dockerfence/dockerfence/docker"
	"github.com/dockerfence/dockerfence/fence"
	"github.com/dockerfence/dockerfence/nft"
	"github.com/dockerfence/dockerfence/status"
)

// Services are what dockerfence run serves around the loop of Run.
type Services struct {
	// Socket is the unix socket of the API (StatusPath, EventsPath),
	// created as ListenUnix does and removed when Serve returns.
	Socket string
	// MetricsAddr, if set, is the HOST:PORT of the Prometheus endpoint,
	// served at /metrics.
	MetricsAddr string
	// RunDir is where every sync that changed the table or failed is
	// recorded as the last apply, for status (the directory of Socket).
	RunDir string
	// Version is the version of dockerfence, for the log.
	Version string
	// OpenLog binds the NFLOG group of the deny rules; nil means
	// denylog.Open.
	OpenLog func(group uint16) (denylog.Source, error)
	// OpenQueue binds the queue of DNS answers that the table holds for
	// the learner of names; nil means OpenQueue.
	OpenQueue func(queue uint16) (QueueConn, error)
}

// Serve is dockerfence run: it runs Run with cfg until ctx ends, and around
// it reads the denials of the policy's NFLOG group (settings.log_group,
// reopened when a reload changes it), attributes them to the containers
// Docker lists, serves the status and the denial events on s.Socket and
// the metrics on s.MetricsAddr, records syncs for status, and tells systemd
// (sd_notify READY=1) once the fence is up. cfg.OnSync, cfg.OnDocker and
// cfg.Ready, if set, are called too. Serve logs through cfg.Log (default
// slog.Default()). It returns Run's error, or why it could not listen.
func Serve(ctx context.Context, cfg Config, s Services) error {
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	log := cfg.Log
	if cfg.Docker != nil {
		log.Info("following Docker", "host", cfg.Docker.Host())
	}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()

	var metrics *Metrics
	if s.MetricsAddr != "" {
		metrics = NewMetrics()
	}
	obs := NewObserver(cfg.Kernel, metrics)
	obs.RunDir = s.RunDir
	hub := &denylog.Hub{}
	var containers *denylog.Containers
	if cfg.Docker != nil {
		containers = &denylog.Containers{List: cfg.Docker.Containers}
	}
	groups := make(chan uint16, 1)
	// The learner of names: it runs on the queue the table holds DNS
	// answers in, with the names lists of the last sync.
	var learnerMetrics *dnslearn.Metrics
	if metrics != nil {
		learnerMetrics = dnslearn.NewMetrics(metrics.Registry)
	}
	var learner *dnslearn.Learner
	queues := make(chan namesQueue, 1)
	if adder, ok := cfg.Kernel.(Committer); ok {
		learner = dnslearn.New(dnslearn.Config{Sets: nameSets{k: adder, table: obs.Table}, Metrics: learnerMetrics,
			Notice: func(err error) { log.Warn("learning names", "err", err) }})
		openQueue := s.OpenQueue
		if openQueue == nil {
			openQueue = OpenQueue
		}
		wg.Go(func() { runNames(ctx, log, queues, openQueue, learner) })
		obs.Names = func(t *fence.Result, st *nft.State, s *status.Status) []status.NameListStatus {
			return namesStatus(learner, t, st, s, time.Now())
		}
	}
	var queue namesQueue
	seeded := false
	onSync, onDocker, ready := cfg.OnSync, cfg.OnDocker, cfg.Ready
	var group uint16
	groupSent := false // log_group 0 is a valid group
	cfg.OnSync = func(r Result) {
		obs.OnSync(r)
		if r.Changed || r.Err != nil {
			if err := status.SaveLastApply(s.RunDir, ApplyOf(r)); err != nil {
				log.Debug("could not record the apply for status", "err", err)
			}
		}
		if r.Err == nil && r.Policy != nil && r.Policy.Settings.LogDenied && (!groupSent || r.Policy.Settings.LogGroup != group) {
			group, groupSent = r.Policy.Settings.LogGroup, true
			select {
			case <-groups:
			default:
			}
			groups <- group
		}
		if learner != nil && r.Err == nil && r.Table != nil {
			rules, err := namesRules(r.Policy, r.Table)
			if err != nil {
				log.Error("names lists", "err", err)
			}
			learner.SetRules(rules)
			if !seeded && rules != nil {
				// What the name sets held when the daemon started: an
				// earlier daemon's learning, or a one-shot apply's.
				seeded = true
				if st, err := readAll(cfg.Kernel, r.Table.Table.Name); err != nil {
					log.Warn("could not read the name sets the table held at start; their addresses are renewed as new ones", "err", err)
				} else if n := seedLearner(learner, r.Table, st); n > 0 {
					log.Info("names: addresses in the sets from before the daemon started", "addresses", n)
				}
			}
			q := namesQueue{}
			if h := r.Table.DNSHold; h != nil {
				q = namesQueue{num: h.Queue, on: true}
			}
			if q != queue {
				queue = q
				select {
				case <-queues:
				default:
				}
				queues <- q
			}
		}
		if onSync != nil {
			onSync(r)
		}
	}
	cfg.OnDocker = func(u docker.Update) {
		obs.OnDocker(u)
		if containers != nil && u.Signal != docker.Lost {
			containers.Invalidate()
		}
		if onDocker != nil {
			onDocker(u)
		}
	}
	var res denylog.Resolver
	if containers != nil {
		res = containers
	}
	open := s.OpenLog
	if open == nil {
		open = denylog.Open
	}
	wg.Go(func() {
		readDenials(ctx, log, groups, open, &denylog.Reader{
			Table:    obs.Table,
			Resolver: res,
			Publish: func(e denylog.Event) {
				if learner != nil && e.Hook == "egress" {
					if n, exp, ok := expiredName(learner, e.Dst); ok {
						e.Name, e.NameExpired = n, exp
					}
				}
				obs.Denial(e)
				hub.Publish(e)
			},
			Overrun: obs.Overrun,
		})
	})

	l, err := ListenUnix(s.Socket)
	if err != nil {
		return err
	}
	requests := make(chan Request)
	cfg.Requests = requests
	closeAPI := serveHTTP(l, (&API{Observer: obs, Hub: hub, Requests: requests, Log: log}).Handler(), func(err error) {
		log.Error("status socket stopped", "socket", s.Socket, "err", err)
	})
	defer func() {
		closeAPI()
		os.Remove(s.Socket)
	}()
	log.Info("serving status and denial events", "socket", s.Socket)
	if metrics != nil {
		ml, err := net.Listen("tcp", s.MetricsAddr)
		if err != nil {
			return fmt.Errorf("--metrics-addr %s: %w", s.MetricsAddr, err)
		}
		mux := http.NewServeMux()
		mux.Handle("/metrics", metrics.Handler())
		defer serveHTTP(ml, mux, func(err error) {
			log.Error("metrics endpoint stopped", "addr", s.MetricsAddr, "err", err)
		})()
		log.Info("serving metrics", "url", "http://"+ml.Addr().String()+"/metrics")
	}
	cfg.Ready = func() {
		if ready != nil {
			ready()
		}
		if err := sdNotify("READY=1"); err != nil {
			log.Warn("could not tell systemd the fence is up", "err", err)
		}
	}
	log.Info("dockerfence run starting", "version", s.Version, "pid", os.Getpid())
	return Run(ctx, cfg)
}

// serveHTTP serves h on l until the function it returns closes the server.
// failed is called if the server stops by itself.
func serveHTTP(l net.Listener, h http.Handler, failed func(error)) (close func()) {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second, ConnContext: withConn}
	go func() {
		if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			failed(err)
		}
	}()
	return func() { srv.Close() }
}

// readDenials reads the NFLOG group that groups last named, reopening it
// when the group changes and retrying every 5 s while another program holds
// it, until ctx ends.
func readDenials(ctx context.Context, log *slog.Logger, groups <-chan uint16, open func(uint16) (denylog.Source, error), r *denylog.Reader) {
	var group uint16
	select {
	case group = <-groups:
	case <-ctx.Done():
		return
	}
	for {
		conn, err := open(group)
		if err != nil {
			log.Warn("cannot read denials; retrying in 5s (the fence itself is not affected)", "group", group, "err", err)
			select {
			case group = <-groups:
			case <-time.After(5 * time.Second):
			case <-ctx.Done():
				return
			}
			continue
		}
		log.Info("reading denials", "nflog_group", group)
		rctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- r.Run(rctx, conn) }()
		select {
		case group = <-groups:
			cancel()
			<-done
		case err := <-done:
			cancel()
			if ctx.Err() != nil {
				return
			}
			log.Warn("reading denials failed; reopening in 5s", "group", group, "err", err)
			select {
			case group = <-groups:
			case <-time.After(5 * time.Second):
			case <-ctx.Done():
				return
			}
		case <-ctx.Done():
			cancel()
			<-done
			return
		}
	}
}

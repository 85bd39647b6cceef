// Package harness is the shared test harness of dockerfence's integration
// tests (package integration) and of its benchmark (integration/bench),
// built on the namespaces of package topo:
//
//   - a fake Docker Engine API (Docker, HangingDocker);
//   - a paced UDP flood and receivers that count what arrives (UDPFlood,
//     UDPCounter, UDPRcvErrors);
//   - raw packets and raw sockets that see what arrives (EchoRequest,
//     SCTPInit, Capture) and nf_tables netlink messages (NFTMsg, NFTBatch);
//   - namespaces beyond topo's (HandleNS, MovingNS) and what to do in them
//     (AddBridge, DelBridge, LinkLocal);
//   - probes and checks (TCPOutcome, DialOutcome, Mapped).
//
// Its functions take a topo.T, which testing.TB satisfies. Nothing here
// changes the namespace of the test process itself.
package harness

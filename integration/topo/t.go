package topo

// T is what topo needs of a test: to be a helper, to register cleanups,
// to report errors, to fail now and to skip. testing.TB satisfies it, and
// so can a program that builds namespaces outside go test, such as the
// benchmark. Fatalf and Skip must not return to their caller (testing.TB
// ends the goroutine).
type T interface {
	Helper()
	Cleanup(func())
	Errorf(format string, args ...any)
	Fatalf(format string, args ...any)
	Skip(args ...any)
}

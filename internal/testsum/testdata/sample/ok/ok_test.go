package ok

import "testing"

func TestPass(t *testing.T) { t.Log("fine") }
func TestSkip(t *testing.T) { t.Skip("needs root (network namespaces)") }
func TestSubs(t *testing.T) {
	t.Run("a", func(t *testing.T) {})
	t.Run("b", func(t *testing.T) { t.Skipf("no %s here", "ipv6") })
}

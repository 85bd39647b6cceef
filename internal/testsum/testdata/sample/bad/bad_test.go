package bad

import "testing"

func TestFail(t *testing.T) { t.Log("line one"); t.Error("want 1, got 2") }
func TestSubFail(t *testing.T) {
	t.Run("x", func(t *testing.T) { t.Fatal("x broke") })
}
func TestPass(t *testing.T) {}

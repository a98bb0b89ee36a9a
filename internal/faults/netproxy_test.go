//go:build faults

package faults_test

import (
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// TestNetProxyReset checks the proxy the network tests rely on, against a
// plain TCP echo server: armed, a link is reset at its first byte;
// disarmed, it echoes. Links are opened from another goroutine all the
// while the reset is armed and disarmed, as clients reconnecting do during
// TestNetworkReset: under -race this is where toxiproxy's unlocked read of a
// toxic's toxicity met setReset's update of it.
func TestNetProxyReset(t *testing.T) {
	echo, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { echo.Close() })
	go func() {
		for {
			c, err := echo.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); io.Copy(c, c) }()
		}
	}()
	p := startProxy(t, "amqp://guest:guest@"+echo.Addr().String()+"/")
	addr := p.proxy.Listen

	// roundTrip sends a byte through the proxy and says whether it came back.
	roundTrip := func() bool {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return false
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(time.Second))
		if _, err := c.Write([]byte{1}); err != nil {
			return false
		}
		var b [1]byte
		_, err = io.ReadFull(c, b[:])
		return err == nil
	}

	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
					roundTrip()
				}
			}
		}()
	}
	for i := range 50 {
		p.setReset(t, true)
		if i%10 == 0 && roundTrip() {
			t.Errorf("toggle %d: a byte came back through an armed reset", i)
		}
		p.setReset(t, false)
		if i%10 == 0 && !roundTrip() {
			t.Errorf("toggle %d: no byte came back with the reset disarmed", i)
		}
	}
	close(stop)
	wg.Wait()
}

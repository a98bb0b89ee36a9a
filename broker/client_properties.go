// The client properties a connection tells the broker.

package broker

import (
	"os"
	"runtime"
	"runtime/debug"
	"sync"

	amqp "github.com/rabbitmq/amqp091-go"
)

// modulePath is warren's Go module.
const modulePath = "github.com/warrenmq/warren"

// clientProperties returns the properties of a new connection: warren's
// own (product, version, platform, host, pid, and the capabilities
// amqp091-go announces) and extra (WithClientProperty).
func clientProperties(extra map[string]any) amqp.Table {
	props := amqp.NewConnectionProperties()
	props["product"] = "warren"
	props["version"] = Version()
	props["platform"] = "Go " + runtime.Version()
	props["information"] = "https://" + modulePath
	if h, err := os.Hostname(); err == nil {
		props["host"] = h
	}
	props["pid"] = int64(os.Getpid())
	for k, v := range extra {
		props[k] = v
	}
	return props
}

// Version returns the version of warren built into the program: the
// module version of github.com/warrenmq/warren from the build information
// (a tag such as v0.9.0, or a pseudo-version), "(devel)" when warren is
// the main module built from a checkout, "unknown" without build
// information.
func Version() string {
	versionOnce.Do(func() {
		version = "unknown"
		info, ok := debug.ReadBuildInfo()
		if !ok {
			return
		}
		if info.Main.Path == modulePath {
			version = info.Main.Version
		} else {
			for _, d := range info.Deps {
				if d.Path == modulePath {
					version = d.Version
					if d.Replace != nil && d.Replace.Version != "" {
						version = d.Replace.Version
					}
					break
				}
			}
		}
		if version == "" {
			version = "(devel)"
		}
	})
	return version
}

var (
	versionOnce sync.Once
	version     string
)

package broker

import "crypto/tls"

// TLSConfigOf returns the TLS configuration an amqps connection dialled
// with opts is given, as Dial builds it.
func TLSConfigOf(opts ...Option) (*tls.Config, error) {
	o := defaultOptions()
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return nil, err
		}
	}
	return clientTLS(o.tls), nil
}

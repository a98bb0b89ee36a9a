package scheduler

import "github.com/warrenmq/warren/broker"

func newEnvelopeForTest(st state) (*broker.Envelope, error) {
	env, err := broker.NewEnvelope(st.job())
	if err != nil {
		return nil, err
	}
	// As a consumer reads it: the body as it came.
	return env.Message().Envelope()
}

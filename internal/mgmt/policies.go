package mgmt

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"

	"github.com/warrenmq/warren/topology"
)

// Policy is a policy as the management API describes it.
type Policy struct {
	Name       string         `json:"name"`
	Vhost      string         `json:"vhost"`
	Pattern    string         `json:"pattern"`
	ApplyTo    string         `json:"apply-to"`
	Priority   int            `json:"priority"`
	Definition map[string]any `json:"definition"`
}

// Policies lists the virtual host's policies (GET /api/policies/{vhost}).
func (c *Client) Policies(ctx context.Context) ([]Policy, error) {
	var out []Policy
	if err := c.get(ctx, c.vhostPath("policies"), &out); err != nil {
		return nil, err
	}
	for i := range out {
		out[i].Definition = normalizeTable(out[i].Definition)
	}
	return out, nil
}

// QueuePolicies returns the policy in effect on each queue that has one,
// by queue name, for topology.Live.Policies.
func (c *Client) QueuePolicies(ctx context.Context) (map[string]topology.LivePolicy, error) {
	var queues []struct {
		Name   string `json:"name"`
		Policy string `json:"policy"`
		// An object, or [] when the queue has no policy.
		Effective json.RawMessage `json:"effective_policy_definition"`
	}
	if err := c.get(ctx, c.vhostPath("queues")+"?columns=name,policy,effective_policy_definition", &queues); err != nil {
		return nil, err
	}
	var policies []Policy
	for _, q := range queues {
		if q.Policy != "" {
			var err error
			if policies, err = c.Policies(ctx); err != nil {
				return nil, err
			}
			break
		}
	}
	priority := map[string]int{}
	for _, p := range policies {
		priority[p.Name] = p.Priority
	}
	out := map[string]topology.LivePolicy{}
	for _, q := range queues {
		if q.Policy == "" {
			continue
		}
		def := map[string]any{}
		dec := json.NewDecoder(bytes.NewReader(q.Effective))
		dec.UseNumber()
		if err := dec.Decode(&def); err != nil {
			def = map[string]any{} // [] or absent: the policy's own definition below
			for _, p := range policies {
				if p.Name == q.Policy {
					def = p.Definition
				}
			}
		}
		out[q.Name] = topology.LivePolicy{Name: q.Policy, Priority: priority[q.Policy], Definition: topology.Table(normalizeTable(def))}
	}
	return out, nil
}

// PutPolicy sets a policy (PUT /api/policies/{vhost}/{name}): created, or
// replaced when one has the name. It needs a user with the policymaker
// tag (or administrator).
func (c *Client) PutPolicy(ctx context.Context, p Policy) error {
	if p.Name == "" {
		return errors.New("mgmt: PutPolicy: empty name")
	}
	body := struct {
		Pattern    string         `json:"pattern"`
		ApplyTo    string         `json:"apply-to"`
		Priority   int            `json:"priority"`
		Definition map[string]any `json:"definition"`
	}{p.Pattern, p.ApplyTo, p.Priority, p.Definition}
	err := c.do(ctx, http.MethodPut, c.policyPath(p.Name), body, nil)
	var se *StatusError
	if errors.As(err, &se) && (se.Status == http.StatusUnauthorized || se.Status == http.StatusForbidden) {
		se.Hint = fmt.Sprintf("setting a policy needs a user with the policymaker or administrator tag; user %q lacks it, or its password is wrong (%s)", c.user, c.shown)
	}
	return err
}

// DeletePolicy deletes a policy (DELETE /api/policies/{vhost}/{name}); a
// policy that is not there is no error.
func (c *Client) DeletePolicy(ctx context.Context, name string) error {
	err := c.do(ctx, http.MethodDelete, c.policyPath(name), nil, nil)
	var se *StatusError
	if errors.As(err, &se) && se.Status == http.StatusNotFound {
		return nil
	}
	return err
}

func (c *Client) policyPath(name string) string {
	return c.vhostPath("policies") + "/" + url.PathEscape(name)
}

//go:build torture

package torture_test

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/warrenmq/warren/inbox/pginbox"
	"github.com/warrenmq/warren/worker"
	"github.com/warrenmq/warren/workflow"
)

// roleChain is a worker child of TestChains: it runs the steps and
// compensations of chains.
const roleChain = "chain"

// chainConsumer names the chain workers' inbox records.
const chainConsumer = "torture.chains"

// The kinds of a chain job, the first letter of its type ("s2": a step at
// place 2). The payload of each is the previous step's result, a string;
// a step's result is its payload and "/s<place>".
const (
	chainStep     = 's' // writes its effect
	chainFailOnce = 'r' // writes its effect, fails its first attempt (the write rolls back)
	chainDieLate  = 'd' // writes its effect; the worker SIGKILLs itself once the inbox committed it, before the ack
	chainFail     = 'f' // fails for good: the chain's compensations run
	chainUndo     = 'u' // a compensation: writes its effect
)

// chainChild runs chain jobs through a PostgreSQL inbox until its stdin
// ends; each effect is a row in chain_effects, written in the inbox's
// transaction. It reports "eff ID", "skip ID" and "die ID" as the
// effects children do.
func chainChild(ctx context.Context) error {
	var rep reporter
	c, closeChild, err := openChild(ctx)
	if err != nil {
		return err
	}
	defer closeChild()
	ib, err := c.pgInbox(chainConsumer)
	if err != nil {
		return err
	}

	handle := worker.HandlerFunc(func(ctx context.Context, job *worker.Job) error {
		if len(job.Type) < 2 {
			return worker.Permanent(errors.New("not a chain job"))
		}
		kind := job.Type[0]
		place, err := strconv.Atoi(job.Type[1:])
		if err != nil {
			return worker.Permanent(err)
		}
		var in string
		if err := job.Decode(&in); err != nil {
			return err
		}
		if kind == chainFail {
			return worker.Permanent(errors.New("torture: a chain's step failing for good, on purpose"))
		}
		info := workflow.Of(job)
		what := "step"
		if kind == chainUndo {
			what = "compensation"
		}
		tx := pginbox.Tx(ctx)
		if tx == nil {
			return worker.Permanent(errors.New("no inbox transaction in the handler's ctx"))
		}
		if _, err := tx.Exec(ctx, "INSERT INTO chain_effects (chain_id, kind, place, job_type, payload, worker) VALUES ($1, $2, $3, $4, $5, $6)",
			info.ChainID, what, place, job.Type, in, c.name); err != nil {
			return err
		}
		if kind == chainFailOnce && job.Attempt == 1 {
			return errors.New("torture: failing after writing the effect, on purpose (the inbox's rollback undoes it)")
		}
		if kind != chainUndo {
			job.SetResult(in + "/s" + strconv.Itoa(place))
		}
		markRan(ctx)
		return nil
	})
	// A death after the commit, before the chain's next step is published.
	report := rep.effects(func(job *worker.Job) bool { return job.Type[0] == chainDieLate })
	return c.run(ctx, report(ib.Middleware(handle)), 10*time.Second)
}

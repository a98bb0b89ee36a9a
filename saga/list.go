package saga

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Queryer is what List and Get need of a database: *pgx.Conn,
// *pgxpool.Pool and pgx.Tx are ones.
type Queryer interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// Instance is a saga as List and Get read it.
type Instance struct {
	ID     string `json:"id"`
	Name   string `json:"name"`
	Status Status `json:"status"`
	// Step is the name of the step of the last command sent.
	Step      string          `json:"step"`
	State     json.RawMessage `json:"state"`
	Deadline  *time.Time      `json:"deadline,omitempty"` // of the pending command
	Version   int             `json:"version"`
	CreatedAt time.Time       `json:"created_at"`
	UpdatedAt time.Time       `json:"updated_at"`
	LastError string          `json:"last_error,omitempty"`
	// Commands are the commands and compensations sent, in order (Get
	// only).
	Commands []Command `json:"commands,omitempty"`
}

// Command is one command or compensation a saga sent.
type Command struct {
	Seq     int        `json:"seq"`
	Step    string     `json:"step"`
	Kind    string     `json:"kind"` // command, compensation
	JobID   string     `json:"job_id"`
	JobType string     `json:"job_type"`
	Status  string     `json:"status"` // pending, succeeded, failed, timed_out
	Error   string     `json:"error,omitempty"`
	SentAt  time.Time  `json:"sent_at"`
	DoneAt  *time.Time `json:"done_at,omitempty"`
}

// ListOptions selects the sagas List reads.
type ListOptions struct {
	Status Status // "": any
	Name   string // "": any
	Limit  int    // 0: 100
}

const selectInstance = `SELECT s.id, s.name, s.status, coalesce(c.step, ''), s.state, s.deadline, s.version,
	s.created_at, s.updated_at, coalesce(s.last_error, '')
	FROM warren_saga s LEFT JOIN LATERAL (
		SELECT step FROM warren_saga_steps WHERE saga_id = s.id ORDER BY seq DESC LIMIT 1) c ON true`

func scanInstance(row pgx.Row) (Instance, error) {
	var in Instance
	var status string
	var state []byte
	err := row.Scan(&in.ID, &in.Name, &status, &in.Step, &state, &in.Deadline, &in.Version, &in.CreatedAt, &in.UpdatedAt, &in.LastError)
	in.Status, in.State = Status(status), json.RawMessage(state)
	return in, err
}

// List reads sagas, newest first, without their commands.
func List(ctx context.Context, db Queryer, o ListOptions) ([]Instance, error) {
	if o.Limit <= 0 {
		o.Limit = 100
	}
	rows, err := db.Query(ctx, selectInstance+`
		WHERE ($1 = '' OR s.status = $1) AND ($2 = '' OR s.name = $2)
		ORDER BY s.created_at DESC, s.id LIMIT $3`, string(o.Status), o.Name, o.Limit)
	if err != nil {
		return nil, fmt.Errorf("saga: list: %w", noTable(err))
	}
	defer rows.Close()
	var out []Instance
	for rows.Next() {
		in, err := scanInstance(rows)
		if err != nil {
			return nil, fmt.Errorf("saga: list: %w", err)
		}
		out = append(out, in)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("saga: list: %w", err)
	}
	return out, nil
}

// Get reads one saga with its commands; an unknown id is an error wrapping
// ErrNotFound.
func Get(ctx context.Context, db Queryer, id string) (Instance, error) {
	in, err := scanInstance(db.QueryRow(ctx, selectInstance+` WHERE s.id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return Instance{}, fmt.Errorf("%w: %q", ErrNotFound, id)
	}
	if err != nil {
		return Instance{}, fmt.Errorf("saga: get %s: %w", id, noTable(err))
	}
	rows, err := db.Query(ctx, `SELECT seq, step, kind, job_id, job_type, status, coalesce(error, ''), sent_at, done_at
		FROM warren_saga_steps WHERE saga_id = $1 ORDER BY seq`, id)
	if err != nil {
		return Instance{}, fmt.Errorf("saga: get %s: %w", id, err)
	}
	defer rows.Close()
	for rows.Next() {
		var c Command
		if err := rows.Scan(&c.Seq, &c.Step, &c.Kind, &c.JobID, &c.JobType, &c.Status, &c.Error, &c.SentAt, &c.DoneAt); err != nil {
			return Instance{}, fmt.Errorf("saga: get %s: %w", id, err)
		}
		in.Commands = append(in.Commands, c)
	}
	if err := rows.Err(); err != nil {
		return Instance{}, fmt.Errorf("saga: get %s: %w", id, err)
	}
	return in, nil
}

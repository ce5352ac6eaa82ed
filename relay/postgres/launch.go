package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/mlrelay/relay/relay"
)

const (
	saveLaunchSQL = `INSERT INTO launches (prediction_id, model, guild_id, channel_id, user_id, token, token_expires, created_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
		ON CONFLICT (prediction_id) DO UPDATE SET model = excluded.model, guild_id = excluded.guild_id,
			channel_id = excluded.channel_id, user_id = excluded.user_id, token = excluded.token,
			token_expires = excluded.token_expires, created_at = excluded.created_at`

	addLaunchSQL = `INSERT INTO launches (prediction_id, model, guild_id, channel_id, user_id, token, token_expires, created_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
		ON CONFLICT (prediction_id) DO NOTHING`

	launchSQL = `SELECT model, guild_id, channel_id, user_id, token, token_expires, created_at
		FROM launches WHERE prediction_id = $1`
)

// SaveLaunch records a launch; see relay.Store. It is committed before it returns, so that the
// completion webhook finds it whichever replica receives it.
func (s *Store) SaveLaunch(ctx context.Context, l relay.Launch) error {
	_, err := s.writeLaunch(ctx, saveLaunchSQL, l)
	return err
}

// AddLaunch records a launch unless its id is recorded already; see relay.Store.
func (s *Store) AddLaunch(ctx context.Context, l relay.Launch) error {
	added, err := s.writeLaunch(ctx, addLaunchSQL, l)
	if err == nil && !added {
		err = fmt.Errorf("postgres: add launch %s: %w", l.PredictionID, relay.ErrLaunchExists)
	}
	return err
}

// writeLaunch runs one of the launch-recording statements and reports whether it wrote a row.
func (s *Store) writeLaunch(ctx context.Context, query string, l relay.Launch) (bool, error) {
	if l.PredictionID == "" {
		return false, errors.New("postgres: save launch: no prediction id")
	}
	var wrote bool
	err := s.do(ctx, func(c *pgx.Conn) error {
		tag, err := c.Exec(ctx, query, l.PredictionID, l.Model, l.GuildID, l.ChannelID, l.UserID, l.Token,
			l.TokenExpires.UnixNano(), l.CreatedAt.UnixNano())
		wrote = tag.RowsAffected() > 0
		return err
	})
	if err != nil {
		return false, fmt.Errorf("postgres: save launch %s: %w", l.PredictionID, err)
	}
	return wrote, nil
}

// Launch returns the launch recorded for a prediction; see relay.Store.
func (s *Store) Launch(ctx context.Context, predictionID string) (relay.Launch, error) {
	l := relay.Launch{PredictionID: predictionID}
	var expires, created int64
	err := s.do(ctx, func(c *pgx.Conn) error {
		return c.QueryRow(ctx, launchSQL, predictionID).Scan(&l.Model, &l.GuildID, &l.ChannelID, &l.UserID, &l.Token,
			&expires, &created)
	})
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return relay.Launch{}, fmt.Errorf("postgres: launch %s: %w", predictionID, relay.ErrNoLaunch)
	case err != nil:
		return relay.Launch{}, fmt.Errorf("postgres: launch %s: %w", predictionID, err)
	}
	l.TokenExpires, l.CreatedAt = fromNanos(expires), fromNanos(created)
	return l, nil
}

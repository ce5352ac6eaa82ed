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

	launchSQL = `SELECT model, guild_id, channel_id, user_id, token, token_expires, created_at
		FROM launches WHERE prediction_id = $1`
)

// SaveLaunch records a launch; see relay.Store. It is committed before it returns, so that the
// completion webhook finds it whichever replica receives it.
func (s *Store) SaveLaunch(ctx context.Context, l relay.Launch) error {
	if l.PredictionID == "" {
		return errors.New("postgres: save launch: no prediction id")
	}
	err := s.do(ctx, func(c *pgx.Conn) error {
		_, err := c.Exec(ctx, saveLaunchSQL, l.PredictionID, l.Model, l.GuildID, l.ChannelID, l.UserID, l.Token,
			l.TokenExpires.UnixNano(), l.CreatedAt.UnixNano())
		return err
	})
	if err != nil {
		return fmt.Errorf("postgres: save launch %s: %w", l.PredictionID, err)
	}
	return nil
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

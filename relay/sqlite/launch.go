package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/mlrelay/relay/relay"
)

const (
	saveLaunchSQL = `INSERT INTO launches (prediction_id, model, guild_id, channel_id, user_id, token, token_expires, created_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (prediction_id) DO UPDATE SET model = excluded.model, guild_id = excluded.guild_id,
			channel_id = excluded.channel_id, user_id = excluded.user_id, token = excluded.token,
			token_expires = excluded.token_expires, created_at = excluded.created_at`

	launchSQL = `SELECT model, guild_id, channel_id, user_id, token, token_expires, created_at
		FROM launches WHERE prediction_id = ?`

	pruneLaunchesSQL = `DELETE FROM launches WHERE prediction_id IN
		(SELECT prediction_id FROM launches WHERE created_at < ? LIMIT ?)`
)

// SaveLaunch records a launch; see relay.Store. It is durable: the bot answers the user only
// once the launch is on disk.
func (s *Store) SaveLaunch(ctx context.Context, l relay.Launch) (err error) {
	if l.PredictionID == "" {
		return errors.New("sqlite: save launch: no prediction id")
	}
	tx, err := s.begin(ctx, true)
	if err != nil {
		return fmt.Errorf("sqlite: save launch: %w", err)
	}
	defer func() {
		if err != nil {
			tx.Rollback()
		}
	}()
	if _, err := tx.ExecContext(ctx, saveLaunchSQL, l.PredictionID, l.Model, l.GuildID, l.ChannelID, l.UserID, l.Token,
		l.TokenExpires.UnixNano(), l.CreatedAt.UnixNano()); err != nil {
		return fmt.Errorf("sqlite: save launch %s: %w", l.PredictionID, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlite: save launch %s: commit: %w", l.PredictionID, err)
	}
	return nil
}

// Launch returns the launch recorded for a prediction; see relay.Store.
func (s *Store) Launch(ctx context.Context, predictionID string) (relay.Launch, error) {
	l := relay.Launch{PredictionID: predictionID}
	var expires, created int64
	err := s.db.QueryRowContext(ctx, launchSQL, predictionID).Scan(&l.Model, &l.GuildID, &l.ChannelID, &l.UserID, &l.Token, &expires, &created)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return relay.Launch{}, fmt.Errorf("sqlite: launch %s: %w", predictionID, relay.ErrNoLaunch)
	case err != nil:
		return relay.Launch{}, fmt.Errorf("sqlite: launch %s: %w", predictionID, err)
	}
	l.TokenExpires, l.CreatedAt = fromNanos(expires), fromNanos(created)
	return l, nil
}

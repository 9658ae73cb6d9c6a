import { useState } from 'preact/hooks';
import type { SessionInfoResponse } from '../shared/protocol/index.js';
import { ApiError, send } from './api.js';

/** The only thing an anonymous visitor sees: nothing of the cluster until a token or login link is given. */
export function LoginPage({ message, onLogin }: { message?: string; onLogin: (s: SessionInfoResponse) => void }) {
  const [token, setToken] = useState('');
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  const submit = async (e: Event): Promise<void> => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const session = await send<SessionInfoResponse>('POST', '/api/session', { token: token.trim() });
      setToken('');
      history.replaceState(null, '', location.pathname === '/login' ? '/jobs' : location.pathname + location.search);
      onLogin(session);
    } catch (err) {
      setError(err instanceof ApiError ? err.message : 'Logging in failed.');
    } finally {
      setBusy(false);
    }
  };

  return (
    <main id="main" class="login">
      <h1>raysub</h1>
      <p>
        Log in with a login link from <code>raysub dashboard --url</code>, or with a user token.
      </p>
      {message && (
        <p class="notice" role="status">
          {message}
        </p>
      )}
      <form onSubmit={(e) => void submit(e)}>
        <label for="token">Token</label>
        <input
          id="token"
          name="token"
          type="password"
          autocomplete="off"
          required
          value={token}
          onInput={(e) => setToken((e.target as HTMLInputElement).value)}
          aria-describedby={error ? 'login-error' : undefined}
          aria-invalid={error ? true : undefined}
        />
        <button type="submit" disabled={busy}>
          {busy ? 'Logging in…' : 'Log in'}
        </button>
        {error && (
          <p id="login-error" class="error" role="alert">
            {error}
          </p>
        )}
      </form>
    </main>
  );
}

import { useEffect, useState } from 'preact/hooks';
import type { SessionInfoResponse } from '../shared/protocol/index.js';
import { ApiError, getJson, onUnauthorized, send, setCsrfToken } from './api.js';
import { ClusterPage } from './cluster.js';
import { JobPage } from './job.js';
import { JobsPage } from './jobs.js';
import { LoginPage } from './login.js';
import { NodesPage } from './nodes.js';
import { Link, parseRoute, useLocation, type Route } from './router.js';
import { SchedulePage, SchedulesPage } from './schedules.js';

type SessionState = { state: 'loading' } | { state: 'anonymous'; message?: string } | { state: 'in'; session: SessionInfoResponse };

const NAV: { href: string; label: string; pages: Route['page'][] }[] = [
  { href: '/jobs', label: 'Jobs', pages: ['jobs', 'job'] },
  { href: '/nodes', label: 'Nodes', pages: ['nodes'] },
  { href: '/schedules', label: 'Schedules', pages: ['schedules', 'schedule'] },
  { href: '/cluster', label: 'Cluster', pages: ['cluster'] },
];

export function App() {
  const [auth, setAuth] = useState<SessionState>({ state: 'loading' });

  const loggedIn = (session: SessionInfoResponse): void => {
    setCsrfToken(session.csrf_token);
    setAuth({ state: 'in', session });
  };

  useEffect(() => {
    const off = onUnauthorized(() => {
      setCsrfToken(null);
      setAuth({ state: 'anonymous', message: 'Your session has ended: log in again.' });
    });
    getJson<SessionInfoResponse>('/api/session')
      .then(loggedIn)
      .catch((err: unknown) => setAuth({ state: 'anonymous', message: err instanceof ApiError && err.status !== 401 ? err.message : undefined }));
    return off;
  }, []);

  if (auth.state === 'loading') return <p class="loading" role="status">Loading…</p>;
  if (auth.state === 'anonymous') return <LoginPage message={auth.message} onLogin={loggedIn} />;
  return <Shell session={auth.session} onLogout={() => setAuth({ state: 'anonymous', message: 'You have logged out.' })} />;
}

function Shell({ session, onLogout }: { session: SessionInfoResponse; onLogout: () => void }) {
  const { path } = useLocation();
  const route = parseRoute(path);
  useEffect(() => {
    const main = document.getElementById('main');
    main?.focus({ preventScroll: true });
  }, [path]);

  const logout = async (): Promise<void> => {
    try {
      await send('DELETE', '/api/session');
    } finally {
      setCsrfToken(null);
      onLogout();
    }
  };

  return (
    <>
      <a class="skip" href="#main">
        Skip to content
      </a>
      <header class="top">
        <span class="brand">raysub</span>
        <nav aria-label="Main">
          <ul>
            {NAV.map((n) => (
              <li key={n.href}>
                <Link href={n.href} aria-current={n.pages.includes(route.page) ? 'page' : undefined}>
                  {n.label}
                </Link>
              </li>
            ))}
          </ul>
        </nav>
        <span class="who">
          <span class="visually-hidden">Logged in as </span>
          {session.name}
          {session.csrf_token !== null && (
            <button type="button" class="link" onClick={() => void logout()}>
              Log out
            </button>
          )}
        </span>
      </header>
      <main id="main" tabIndex={-1}>
        <Page route={route} />
      </main>
    </>
  );
}

function Page({ route }: { route: Route }) {
  switch (route.page) {
    case 'jobs':
      return <JobsPage />;
    case 'job':
      return <JobPage key={route.id} id={route.id} />;
    case 'nodes':
      return <NodesPage />;
    case 'schedules':
      return <SchedulesPage />;
    case 'schedule':
      return <SchedulePage key={route.name} name={route.name} />;
    case 'cluster':
      return <ClusterPage />;
    case 'missing':
      return (
        <section>
          <h1>Not found</h1>
          <p>
            There is no page at <code>{route.path}</code>. <Link href="/jobs">Go to the jobs</Link>.
          </p>
        </section>
      );
  }
}

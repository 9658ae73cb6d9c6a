/** A small router on the History API: the head serves the same page at each of these paths. */
import type { ComponentChildren } from 'preact';
import { useEffect, useState } from 'preact/hooks';

export type Route =
  | { page: 'jobs' }
  | { page: 'job'; id: string }
  | { page: 'nodes' }
  | { page: 'schedules' }
  | { page: 'schedule'; name: string }
  | { page: 'cluster' }
  | { page: 'missing'; path: string };

export function parseRoute(path: string): Route {
  const parts = path.split('/').filter(Boolean).map((p) => decodeURIComponent(p));
  const [first, second] = parts;
  if (parts.length === 0 || (first === 'jobs' && parts.length === 1) || (first === 'login' && parts.length === 1)) return { page: 'jobs' };
  if (first === 'jobs' && second && parts.length === 2) return { page: 'job', id: second };
  if (first === 'nodes' && parts.length === 1) return { page: 'nodes' };
  if (first === 'schedules' && parts.length === 1) return { page: 'schedules' };
  if (first === 'schedules' && second && parts.length === 2) return { page: 'schedule', name: second };
  if (first === 'cluster' && parts.length === 1) return { page: 'cluster' };
  return { page: 'missing', path };
}

const listeners = new Set<() => void>();

export function navigate(href: string, replace = false): void {
  if (replace) history.replaceState(null, '', href);
  else history.pushState(null, '', href);
  for (const fn of listeners) fn();
}

/** The current location (path and query), re-rendering on navigation and Back/Forward. */
export function useLocation(): { path: string; query: URLSearchParams } {
  const [, setTick] = useState(0);
  useEffect(() => {
    const update = (): void => setTick((t) => t + 1);
    listeners.add(update);
    window.addEventListener('popstate', update);
    return () => {
      listeners.delete(update);
      window.removeEventListener('popstate', update);
    };
  }, []);
  return { path: location.pathname, query: new URLSearchParams(location.search) };
}

/** A link that navigates inside the page (a modified click still opens a new tab). */
export function Link(props: { href: string; children: ComponentChildren; class?: string; 'aria-current'?: 'page' | undefined }) {
  const onClick = (e: MouseEvent): void => {
    if (e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
    e.preventDefault();
    navigate(props.href);
  };
  return (
    <a href={props.href} class={props.class} aria-current={props['aria-current']} onClick={onClick}>
      {props.children}
    </a>
  );
}

export const jobHref = (id: string): string => `/jobs/${encodeURIComponent(id)}`;
export const scheduleHref = (name: string): string => `/schedules/${encodeURIComponent(name)}`;

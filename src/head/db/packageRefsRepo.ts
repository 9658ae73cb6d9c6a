import type { Db } from './open.js';

/**
 * Which jobs name which packages (working_dir, py_modules). Rows go with their job (ON DELETE
 * CASCADE), so deleting a job — by the user or by retention — is what frees its packages. A
 * schedule keeps the packages its job definition names (schedules are few: their definitions are
 * searched as text).
 */
export function packageRefsRepo(db: Db) {
  const insert = db.prepare('INSERT OR IGNORE INTO job_packages (name, job_id) VALUES (?, ?)');
  const used = db
    .prepare(
      `SELECT 1 FROM job_packages WHERE name = @name
       UNION ALL SELECT 1 FROM schedules WHERE instr(job, 'gcs://' || @name) > 0
       LIMIT 1`,
    )
    .pluck();
  return {
    add(jobId: string, names: readonly string[]): void {
      for (const name of names) insert.run(name, jobId);
    },
    /** True while any job (pending, running, or finished and kept) or any schedule names the package. */
    isReferenced(name: string): boolean {
      return used.get({ name }) !== undefined;
    },
  };
}

/** Splits a worker's output into whole lines and prefixes each, so tasks' lines stay readable in the job's log. */
export class LineSplitter {
  private rest = '';

  constructor(private readonly prefix: string) {}

  push(data: Buffer): Buffer {
    const text = this.rest + data.toString('utf8');
    const cut = text.lastIndexOf('\n');
    if (cut < 0) {
      this.rest = text;
      return Buffer.alloc(0);
    }
    this.rest = text.slice(cut + 1);
    return Buffer.from(
      text
        .slice(0, cut + 1)
        .split('\n')
        .slice(0, -1)
        .map((l) => `${this.prefix}${l}\n`)
        .join(''),
    );
  }

  flush(): Buffer {
    const r = this.rest;
    this.rest = '';
    return r ? Buffer.from(`${this.prefix}${r}\n`) : Buffer.alloc(0);
  }
}

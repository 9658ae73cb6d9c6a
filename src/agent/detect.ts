
export interface GpuDevice {
  index: number;
  uuid: string;
  name: string;
  memoryMiB: number;
}

/**
 * GPUs as `nvidia-smi` reports them. The CUDA toolkit alone is not a GPU: no driver, or a
 * failing nvidia-smi, means none.
 */
export async function detectGpus(): Promise<GpuDevice[]> {
  try {
    const { execa } = await import('execa');
    const { stdout, exitCode } = await execa(
      'nvidia-smi',
      ['--query-gpu=index,uuid,name,memory.total', '--format=csv,noheader,nounits'],
      { timeout: 5000, reject: false },
    );
    if (exitCode !== 0) return [];
    return stdout
      .split('\n')
      .map((line) => line.split(',').map((s) => s.trim()))
      .filter((f) => f.length >= 4 && /^\d+$/.test(f[0] ?? ''))
      .map(([index, uuid, name, mem]) => ({ index: Number(index), uuid: uuid ?? '', name: name ?? '', memoryMiB: Number(mem) }));
  } catch {
    return [];
  }
}

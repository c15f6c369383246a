import yauzl from 'yauzl';

/**
 * Whether a file is a zip whose central directory can be read: what `moon` needs to unpack it.
 * Cheap (the end of the file only, no entry is inflated). Returns why not, or undefined.
 */
export function zipProblem(path: string): Promise<string | undefined> {
  return new Promise((resolve) => {
    yauzl.open(path, { lazyEntries: true, autoClose: false }, (error, zip) => {
      if (error || !zip) {
        resolve(error?.message ?? 'unreadable');
        return;
      }
      zip.close();
      resolve(undefined);
    });
  });
}

/**
 * The little of s3rver (a fake S3 server, devDependency, shipped without types) that
 * test/support/s3-server.ts uses, including the filesystem store it patches.
 */
declare module 's3rver' {
  import type { Server } from 'node:http';
  import type { AddressInfo } from 'node:net';
  import type { Readable } from 'node:stream';

  interface S3rverOptions {
    address?: string;
    port?: number;
    directory?: string;
    silent?: boolean;
    resetOnClose?: boolean;
    configureBuckets?: { name: string }[];
  }

  /** An object being stored: the request body (or a form field's bytes) and its headers. */
  export interface S3rverObject {
    bucket: string;
    key: string;
    content: Readable | Buffer;
    metadata: Record<string, string | string[] | undefined>;
  }

  export interface S3rverFilesystemStore {
    /** The file behind `key` for `resource` ('object', 'metadata.json', ...). */
    getResourcePath(bucket: string, key: string, resource: string): string;
    putMetadata(bucket: string, key: string, metadata: S3rverObject['metadata'], md5: string): Promise<void>;
    putObject(object: S3rverObject): Promise<{ size: number; md5: string }>;
  }

  export default class S3rver {
    constructor(options: S3rverOptions);
    readonly store: S3rverFilesystemStore;
    /** Creates the configured buckets, then listens; resolves to the bound address. */
    run(): Promise<AddressInfo>;
    close(): Promise<void>;
    /** The server `run` started; undefined before. */
    httpServer?: Server;
  }
}

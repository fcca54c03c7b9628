/** Options of {@link registerPrebuilt} and {@link buildPrebuilt}. */
export interface PrebuiltOptions {
  /** Folder whose `<pkg>/src/**.ts` files are served or built (default: the folder holding @minipaas/core). */
  packages?: string;
  /** Folder of the prebuilt files (default: `<packages>/core/dist/prebuilt`). */
  out?: string;
}

/** Serves the prebuilt JavaScript of unchanged package sources through a module load hook. */
export function registerPrebuilt(options?: PrebuiltOptions): boolean;

/** Strips the types of every package source into the prebuilt folder; returns how many files were written. */
export function buildPrebuilt(options?: PrebuiltOptions): number;

/** Dependencies the bins load from one bundled file (see {@link buildVendorBundles}). */
export const VENDOR_BUNDLES: readonly string[];

/**
 * Bundles each of {@link VENDOR_BUNDLES} into `<out>/vendor/<name>.mjs` with rolldown when it is installed;
 * returns the bundled `name@version`s.
 */
export function buildVendorBundles(options?: PrebuiltOptions): Promise<string[]>;

import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

/**
 * The models that ship with pgml-kit (`models/` in the package: `<id>/onnx/model.onnx`, …), the
 * same folder from src/ and from dist/.
 */
export const BUNDLED_MODELS_DIR = fileURLToPath(new URL('../../models', import.meta.url))

/** The directory holding `modelId`: `modelsDir` when it has a copy, else the bundled one when it does, else null. */
export function modelDirectoryFor(modelId: string, modelsDir: string | null): string | null {
  if (modelsDir !== null && existsSync(join(modelsDir, modelId))) return modelsDir
  if (existsSync(join(BUNDLED_MODELS_DIR, modelId, 'onnx', 'model.onnx'))) return BUNDLED_MODELS_DIR
  return null
}

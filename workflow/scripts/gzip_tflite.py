from pqgrid.convert import gzip_file
from pqgrid.io import run_script

run_script(snakemake.log[0], gzip_file, snakemake.input.tflite, snakemake.output.gz)

"""Reports: figures of a run or a grid search (`plots`) and one self-contained HTML page (`html`)."""

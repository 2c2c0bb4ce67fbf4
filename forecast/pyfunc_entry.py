"""What MLflow runs when it loads a logged forecast model (models from code): nothing is unpickled."""

from mlflow.models import set_model

from forecast.serving import ForecastModel

set_model(ForecastModel())
